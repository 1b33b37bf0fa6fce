// The report page (/console/reports) is drawn on the server; this only fills in the time zone:
// a first visit without ?tz= is shown in the browser's own zone rather than UTC.

const params = new URLSearchParams(window.location.search);
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
if (!params.has("tz") && zone && zone !== "UTC") {
  params.set("tz", zone);
  window.location.replace(`${window.location.pathname}?${params}`);
} else {
  const input = document.getElementById("period-tz");
  if (input && !input.value && zone) input.value = zone;
}

// Text colour on a site-chosen accent colour, by WCAG 2 contrast: of black-ish and white, the one
// that reads better. For any colour one of them reaches 4.5:1 (AA), so a yellow accent gets dark
// text and an indigo one white text. widget.js (the loader, plain ES5) has its own copy.

const DARK = "#111111";
const LIGHT = "#ffffff";

function channel(value) {
  const c = value / 255;
  return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

/** "#rgb", "#rgba", "#rrggbb" or "#rrggbbaa" as [r, g, b] (alpha ignored), or null. */
export function parseHex(color) {
  const match = /^#([0-9a-f]{3,8})$/i.exec(String(color).trim());
  if (!match) return null;
  let hex = match[1];
  if (hex.length === 3 || hex.length === 4) hex = Array.from(hex.slice(0, 3), (c) => c + c).join("");
  else if (hex.length === 6 || hex.length === 8) hex = hex.slice(0, 6);
  else return null;
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

export function luminance(rgb) {
  return 0.2126 * channel(rgb[0]) + 0.7152 * channel(rgb[1]) + 0.0722 * channel(rgb[2]);
}

export function contrastRatio(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** The text colour to use on `background` (a hex colour); white when it cannot be read. */
export function textOn(background) {
  const rgb = parseHex(background);
  if (!rgb) return LIGHT;
  return contrastRatio(rgb, parseHex(DARK)) >= contrastRatio(rgb, parseHex(LIGHT)) ? DARK : LIGHT;
}

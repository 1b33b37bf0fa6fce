// The ticket's activity log in the console (docs/web.md, "Activity"): who changed the status,
// priority, assignee, labels or AI, and when, drawn as compact lines among the messages. Agents
// only: the lines come from GET /tickets/{id}/activity and activity.created frames, which the
// server sends to agents alone.

/** One line's text: who (by their current name), did what. */
export function activityText(entry) {
  const who = entry.actor ? entry.actor.name || entry.actor.role : "System";
  const data = entry.data || {};
  switch (entry.kind) {
    case "status":
      return `${who} changed the status from ${data.from} to ${data.to}`;
    case "priority":
      return `${who} changed the priority from ${data.from} to ${data.to}`;
    case "assignee":
      if (!data.to) return `${who} unassigned ${data.from ? data.from.name : "the conversation"}`;
      return `${who} assigned the conversation to ${data.to.name}`;
    case "ai":
      return data.to ? `${who} turned the AI on` : `${who} turned the AI off`;
    case "labels": {
      const parts = [];
      if (data.added && data.added.length) parts.push(`added ${names(data.added)}`);
      if (data.removed && data.removed.length) parts.push(`removed ${names(data.removed)}`);
      return `${who} ${parts.join(" and ") || "changed the labels"}`;
    }
    default:
      return `${who} changed the ${entry.kind}`;
  }
}

function names(labels) {
  return labels.map((label) => `“${label.name}”`).join(", ");
}

/** Every line after `afterId`, oldest first (a few pages at most). */
export async function loadActivity(api, ticketId, afterId = 0) {
  const entries = [];
  let after = afterId;
  for (let page = 0; page < 10; page += 1) {
    const body = await api(`/tickets/${encodeURIComponent(ticketId)}/activity?after_id=${after}&limit=500`);
    entries.push(...body.activity);
    if (!body.has_more || !body.activity.length) break;
    after = body.activity[body.activity.length - 1].id;
  }
  return entries;
}

/** Draw `entry` in `thread` (idempotent by id). */
export function showActivity(thread, entry, formatTime) {
  thread.addTimedLine(`activity-${entry.id}`, entry.created_at, `${activityText(entry)} · ${formatTime(entry.created_at)}`);
}

-- Agent availability and routing (docs/web.md, "Never miss a customer"): which server instances
-- are alive, which agents have a console open on which instance, each agent's chosen and last
-- announced status, and the round-robin position of automatic assignment.
-- depends: 0012.ai-actions

-- One row per running server process, its heartbeat refreshed every third of
-- AGENT_PRESENCE_TTL_SECONDS. A process that stops refreshing (killed, frozen) stops counting
-- after the TTL, and with it every console it held.
CREATE TABLE server_instances (
    instance_id  text PRIMARY KEY CHECK (length(instance_id) BETWEEN 1 AND 100),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Open agent consoles (inbox sockets) per agent and instance. `sockets` is what the instance
-- holds; when it drops to 0, closed_at says since when (a page reload is not going offline:
-- AGENT_OFFLINE_AFTER_SECONDS).
CREATE TABLE agent_consoles (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instance_id text NOT NULL REFERENCES server_instances (instance_id) ON DELETE CASCADE,
    sockets     integer NOT NULL CHECK (sockets >= 0),
    closed_at   timestamptz,
    PRIMARY KEY (user_id, instance_id)
);
CREATE INDEX agent_consoles_instance_idx ON agent_consoles (instance_id);

-- Per agent: away (chosen by the agent), the status last announced to the consoles (so each
-- change is announced once, by whichever instance sees it first), the last console activity
-- (AGENT_AWAY_AFTER_SECONDS) and the last automatic assignment (round robin: the agent
-- assigned longest ago goes first).
CREATE TABLE agent_availability (
    user_id           uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    away              boolean NOT NULL DEFAULT false,
    status            text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'away', 'offline')),
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    last_active_at    timestamptz NOT NULL DEFAULT now(),
    last_assigned_at  timestamptz
);

-- Open conversations per assignee (the per-agent limit), and the tickets that may need a person
-- (the routing sweep's candidates).
CREATE INDEX tickets_assignee_open_idx ON tickets (assignee_id) WHERE status IN ('open', 'pending');
CREATE INDEX tickets_needs_agent_idx ON tickets (last_activity_at)
    WHERE status = 'open' AND (waiting_for_agent OR NOT ai_enabled);

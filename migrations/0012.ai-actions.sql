-- AI actions (docs/ai.md, "Acting"): HTTP calls on the company's own API that admins configure
-- and the model may make during a reply, and the log of every call made, per ticket.
-- depends: 0011.widget-settings-and-email

CREATE TABLE ai_actions (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The function name the model calls (Groq's rule for tool names).
    name                  text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    description           text NOT NULL,
    -- JSON Schema of the arguments (an object schema), checked when saved.
    parameters            jsonb NOT NULL,
    method                text NOT NULL CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
    url_template          text NOT NULL,
    -- What the room reads while it runs, with {parameter} placeholders: "Looking up order {order_id}".
    label                 text NOT NULL DEFAULT '',
    -- The request headers as encrypted JSON (services/actions.py, ACTIONS_SECRET_KEY): they may
    -- hold credentials. Their names are kept in clear, to be shown back.
    headers_encrypted     bytea,
    header_names          text[] NOT NULL DEFAULT '{}',
    timeout_seconds       real NOT NULL DEFAULT 5 CHECK (timeout_seconds > 0 AND timeout_seconds <= 60),
    -- Changes something (a refund, a cancellation): it waits for a person's approval.
    mutating              boolean NOT NULL DEFAULT false,
    -- A mutating action the ticket's customer may confirm themselves (else only agents approve).
    customer_confirmation boolean NOT NULL DEFAULT false,
    enabled               boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- One row per tool call the model made in a reply (handoff_to_human excepted): what agents see
-- in the ticket's tool-call log, and where an approval waits. Never a header value; the answer
-- is kept as a bounded excerpt.
CREATE TABLE ai_tool_calls (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id       uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    reply_id        uuid NOT NULL,
    -- The model's id for the call (the follow-up's tool message answers it).
    model_call_id   text NOT NULL,
    action_id       uuid REFERENCES ai_actions (id) ON DELETE SET NULL,
    name            text NOT NULL,
    arguments       jsonb,
    label           text NOT NULL DEFAULT '',
    mutating        boolean NOT NULL DEFAULT false,
    -- Who may approve a waiting call: 'agent', or 'customer' (the customer or an agent).
    confirm_by      text CHECK (confirm_by IN ('agent', 'customer')),
    status          text NOT NULL CHECK (status IN (
                        'running', 'awaiting_approval', 'approved', 'refused', 'succeeded', 'failed', 'cancelled')),
    decided_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    decided_at      timestamptz,
    http_status     integer,
    error           text,
    result_excerpt  text,
    instance_id     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX ai_tool_calls_ticket_idx ON ai_tool_calls (ticket_id, created_at);
CREATE INDEX ai_tool_calls_open_idx ON ai_tool_calls (reply_id) WHERE status IN ('running', 'awaiting_approval', 'approved');

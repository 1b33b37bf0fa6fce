DROP INDEX tickets_needs_agent_idx;
DROP INDEX tickets_assignee_open_idx;
DROP TABLE agent_availability;
DROP TABLE agent_consoles;
DROP TABLE server_instances;

DROP TABLE ai_tool_calls;
DROP TABLE ai_actions;

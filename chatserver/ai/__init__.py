"""AI replies: the Groq client, prompts, knowledge base, offline responder and reply orchestration."""

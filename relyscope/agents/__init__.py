"""Tools and agents: tool registry, trajectory-recording executor, LangChain adapters."""

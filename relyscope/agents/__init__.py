"""Tools and agents: tool registry, trajectory-recording executor, LangChain adapters."""

from relyscope.agents.executor import AgentExecutor, AgentRun, ChatModel
from relyscope.agents.langchain import CaseRecorder
from relyscope.agents.messages import case_from_messages
from relyscope.agents.registry import Tool, ToolRegistry, ToolResult

__all__ = ["AgentExecutor", "AgentRun", "CaseRecorder", "ChatModel", "Tool", "ToolRegistry",
           "ToolResult", "case_from_messages"]

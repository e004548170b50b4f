"""The MCP front end: ``codeindex mcp`` serves CodeIndex as MCP tools (stdio or HTTP).

Importing this package is cheap; the SDK is imported by ``codeindex.mcp.server``.
"""

"""Retrieval: FAISS + sentence-transformers retriever, index build, LangChain adapters."""

"""Item embeddings → semantic IDs: residual quantization, unique-ID resolution, prefix trie."""

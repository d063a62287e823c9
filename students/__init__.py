"""Students: trainable retrievers and rerankers that learn from teacher scores."""

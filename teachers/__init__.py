"""Teachers: models that score (query, passage) candidates for distillation."""

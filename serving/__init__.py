"""After training: the SavedModel export, scoring photos with it, and promoting a model to serving."""

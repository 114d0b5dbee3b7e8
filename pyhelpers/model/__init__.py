"""MLflow side of line 2: train the best parameters, register, gate, promote, roll back."""

"""Lightning glue: modules that own a backbone and its short circuit, optimizers, loggers."""

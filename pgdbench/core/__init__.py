"""The core: the trainer protocol, the model, the float64 reference, the registry, the training loop and the conformance kit."""

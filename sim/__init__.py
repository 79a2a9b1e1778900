"""The simulated world: configuration, mobility, traffic, channel, queues, engines, results."""

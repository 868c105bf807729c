"""Shared code of the pipeline's services: settings, messages, topology and the AMQP runtime."""

"""Reusable Keras layers of the zoo, registered as serializable.

Importing this package imports Keras.
"""

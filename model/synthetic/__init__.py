"""A synthetic dataset in the Fashionpedia format, learnable by a tiny model.

Category follows from shape, attributes from colour, pattern and size. See
``generate`` for the command line.
"""

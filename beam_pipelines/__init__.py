"""Turning the raw AVA download into validated examples, with Apache Beam."""

"""Fixture writers for tests: real-size JPEGs in the benchmarks' release layouts, manifests."""

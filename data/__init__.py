"""Where data lives and comes from: schema, stores, world loading, generators, feeds."""

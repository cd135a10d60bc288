"""Warehouse-native metrics: the definitions a team describes once, the queries built from them
and run inside its engine, and the store and refresh that wire them into the app."""

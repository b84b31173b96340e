"""Everything that talks to devices: readings vocabulary, payload parsers, adapters, simulator."""

"""Bluetooth LE health devices: pure GATT parsers (no bleak) and the bleak session manager."""

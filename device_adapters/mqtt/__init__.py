"""MQTT: payload formats (pure) and the aiomqtt source (the only aiomqtt importer)."""

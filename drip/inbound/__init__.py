"""The way back: what returns by mail or webhook, read, classified and acted on."""

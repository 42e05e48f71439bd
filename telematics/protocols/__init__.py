"""Protocol codecs: pure functions from bytes to messages and back, no I/O."""

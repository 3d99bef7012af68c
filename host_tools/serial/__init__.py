"""Real boards on a serial port: the raw-REPL board, its files, firmware images, flashing."""

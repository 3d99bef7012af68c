// Test-only shim: the part of the Web Serial API's SerialPort the Improv SDK uses
// (readable, writable), over a serial device path such as the virtual board's pseudo-terminal.
// Read through a tty handle (event-driven, raw mode), not a file stream: a port left with
// VMIN 0 by another program answers an empty read, which a file stream takes for its end.
import fs from "node:fs";
import tty from "node:tty";

export class PtySerialPort {
  constructor(path) {
    const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    const source = new tty.ReadStream(fd);
    source.setRawMode(true);
    this.readable = new ReadableStream({
      start(controller) {
        source.on("data", (chunk) => controller.enqueue(new Uint8Array(chunk)));
        source.on("error", (error) => controller.error(error));
      },
      cancel() {
        source.pause();
      },
    });
    this.writable = new WritableStream({
      write(chunk) {
        fs.writeSync(fd, chunk);
      },
    });
  }
}

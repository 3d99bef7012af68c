// The Improv reference client (improv-wifi-serial-sdk's ImprovSerial) against a board:
//   node --import ./register.mjs client.mjs PORT SSID
// with the password in $IMPROV_PASSWORD. Prints one JSON line per step.
import { ImprovSerial } from "improv-wifi-serial-sdk/dist/serial.js";
import { PtySerialPort } from "./pty_serial_port.mjs";

const [port, ssid] = process.argv.slice(2);
const say = (record) => console.log(JSON.stringify(record));
const quiet = process.env.IMPROV_DEBUG ? { log: console.error, debug: console.error, error: console.error } : { log() {}, debug() {}, error: (...args) => console.error(...args) };
const client = new ImprovSerial(new PtySerialPort(port), quiet);
try {
  const info = await client.initialize(5000);
  say({ step: "initialize", state: client.state, info });
  say({ step: "scan", networks: await client.scan() });
  try {
    await client.provision(ssid, process.env.IMPROV_PASSWORD, 60000);
    say({ step: "provision", state: client.state, nextUrl: client.nextUrl ?? null });
  } catch (error) {
    // The board sends the error, then the state it is back in: wait for that state.
    if (client.state === 3) {
      await new Promise((settle) => {
        client.addEventListener("state-changed", settle, { once: true });
        setTimeout(settle, 5000);
      });
    }
    say({ step: "provision", state: client.state, error: String(error) });
  }
} catch (error) {
  say({ step: "failed", error: String(error) });
}
process.exit(0);

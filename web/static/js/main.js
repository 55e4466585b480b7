// Entry point: start the page. Everything else lives in app.js and the modules it wires.

import { App } from "./app.js";

const app = new App(window);
window.mailchat = app.debugHandle();
app.start().catch((error) => console.error("Mailchat failed to start", error));

// Entry point: the hub and the pattern come from the page's query string,
// e.g. index.html?hub=http://127.0.0.1:8765&pattern=plant/%2B/temp
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { RtnbProvider } from "rtnb/react";

import { Dashboard } from "./Dashboard";

const query = new URLSearchParams(location.search);
const hub = query.get("hub") ?? "http://127.0.0.1:8765";
const pattern = query.get("pattern") ?? "plant/+/temp";
const token = query.get("token");

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <RtnbProvider url={hub} token={token}>
      <Dashboard pattern={pattern} />
    </RtnbProvider>
  </StrictMode>,
);

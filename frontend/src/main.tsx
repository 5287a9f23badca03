import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { Controller } from "./app/controller";
import "./styles/app.css";

const controller = new Controller({ window });
controller.start();

const root = document.getElementById("root");
if (!root) throw new Error("The page has no #root element");
createRoot(root).render(
  <StrictMode>
    <App controller={controller} />
  </StrictMode>,
);

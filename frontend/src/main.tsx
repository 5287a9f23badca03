import { QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { Services } from "./app/services";
import "./styles/app.css";

const services = new Services();
void services.start();

const root = document.getElementById("root");
if (!root) throw new Error("The page has no #root element");
createRoot(root).render(
  <StrictMode>
    <QueryClientProvider client={services.client}>
      <App services={services} />
    </QueryClientProvider>
  </StrictMode>,
);

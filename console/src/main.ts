import "./style.css";
import type { Page } from "./page";
import { loadCapabilities } from "./caps";
import { fill, h } from "./dom";
import { session, type Capabilities } from "./session";
import { signIn } from "./auth";
import { errorBox } from "./ui";
import { signInPage } from "./pages/signin";
import { podsPage } from "./pages/pods";
import { podPage } from "./pages/pod";
import { createPodPage } from "./pages/createPod";
import { volumesPage } from "./pages/volumes";
import { ingressesPage } from "./pages/ingresses";
import { vpcPage } from "./pages/vpc";
import { auditPage } from "./pages/audit";
import { replayPage } from "./pages/replay";
import { overviewPage } from "./pages/overview";
import { hostsPage } from "./pages/hosts";


interface Route {
  pattern: RegExp;
  page: Page;
  nav?: string;
  allowed: () => boolean;
}

const resources = () => session.readsResources();
const routes: Route[] = [
  { pattern: /^pods\/new$/, page: createPodPage, nav: "pods", allowed: resources },
  { pattern: /^pods\/([^/]+)$/, page: podPage, nav: "pods", allowed: resources },
  { pattern: /^pods$/, page: podsPage, nav: "pods", allowed: resources },
  { pattern: /^overview$/, page: overviewPage, nav: "overview", allowed: resources },
  { pattern: /^volumes$/, page: volumesPage, nav: "volumes", allowed: resources },
  { pattern: /^ingresses$/, page: ingressesPage, nav: "ingresses", allowed: resources },
  { pattern: /^vpc$/, page: vpcPage, nav: "vpc", allowed: resources },
  { pattern: /^audit$/, page: auditPage, nav: "audit", allowed: () => session.readsAudit() },
  { pattern: /^replay$/, page: replayPage, nav: "replay", allowed: () => true },
  { pattern: /^hosts$/, page: hostsPage, nav: "hosts", allowed: () => session.isOperator() },
];

const navItems: { id: string; label: string; allowed: () => boolean }[] = [
  { id: "overview", label: "Overview", allowed: resources },
  { id: "pods", label: "Pods", allowed: resources },
  { id: "volumes", label: "Volumes", allowed: resources },
  { id: "ingresses", label: "Ingresses", allowed: resources },
  { id: "vpc", label: "VPC", allowed: resources },
  { id: "audit", label: "Audit", allowed: () => session.readsAudit() },
  { id: "replay", label: "Replay", allowed: () => true },
  { id: "hosts", label: "Hosts", allowed: () => session.isOperator() },
];

const app = document.getElementById("app")!;
let caps: Capabilities | null = null;
let current: AbortController | null = null;

function homeRoute(): string {
  return session.readsResources() ? "pods" : "audit";
}

function layout(active: string | undefined): HTMLElement {
  const me = session.me();
  const main = h("main", { id: "main" });
  const signOut = h("button", { class: "link", type: "button", "data-testid": "sign-out", onclick: () => session.signOut() }, "Sign out");
  fill(app,
    h("header", { class: "top" },
      h("a", { class: "brand", href: "#/" + homeRoute() }, "Kraud"),
      h("nav", { "aria-label": "Console" },
        navItems.filter((n) => n.allowed()).map((n) =>
          h("a", { href: `#/${n.id}`, class: n.id === active ? "active" : null, "data-nav": n.id }, n.label))),
      h("div", { class: "who", "data-testid": "who" },
        h("span", { class: "role", "data-role": me.role }, me.role),
        me.tenant ? h("span", { class: "tenant" }, me.tenant.name) : h("span", { class: "tenant" }, "platform"),
        signOut)),
    main);
  return main;
}

async function route(): Promise<void> {
  current?.abort();
  current = new AbortController();
  const signal = current.signal;
  if (!session.signedIn()) {
    signInPage(app, { params: [], query: new URLSearchParams(), caps: { has: () => false }, signal });
    return;
  }
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?", 2) as [string, string | undefined];
  if (!path) {
    location.replace("#/" + homeRoute());
    return;
  }
  const match = routes.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);
  const main = layout(match?.r.nav);
  if (!match) {
    fill(main, h("h1", null, "Not found"), h("p", null, "There is no such page in the console."));
    return;
  }
  if (!match.r.allowed()) {
    // The API refuses these calls for this token too; the console does not even ask.
    fill(main, h("div", { class: "error", role: "alert", "data-code": "FORBIDDEN", "data-testid": "forbidden" },
      h("strong", null, "FORBIDDEN"), ` A ${session.me().role} token does not see this page.`));
    return;
  }
  try {
    caps ??= await loadCapabilities();
    await match.r.page(main, { params: match.m!.slice(1).map(decodeURIComponent), query: new URLSearchParams(search ?? ""), caps, signal });
  } catch (e) {
    if (!signal.aborted) fill(main, errorBox(e));
  }
}

session.onChange(() => {
  caps = null;
  void route();
});
window.addEventListener("hashchange", () => void route());

// A reload within the tab keeps the session (sessionStorage survives reloads, not the tab).
(async () => {
  const token = session.token();
  if (token) {
    try {
      await signIn(token);
      return;
    } catch {
      session.trying(null);
    }
  }
  await route();
})();

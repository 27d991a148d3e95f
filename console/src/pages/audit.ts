import { download, gql } from "../api";
import { field, fill, h, row, table } from "../dom";
import { fromLocalInput, shortId, time, toLocalInput } from "../format";
import type { Page } from "../page";
import { tenantNames } from "../queries";
import { session } from "../session";
import type { AuditEntry } from "../types";
import { busy, errorBox, notice } from "../ui";

interface AuditPage {
  nodes: AuditEntry[];
  totalCount: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** Saves a Blob under a file name: an object URL clicked as a download link, then revoked. */
function save(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name, class: "hidden" });
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The audit log (the hash chain) with filters, its verification, and signed exports. */
export const auditPage: Page = async (root) => {
  const operatorView = session.me().tenant === null;
  const tenants = await tenantNames();
  const from = h("input", { type: "datetime-local", step: 1, "data-testid": "audit-from" });
  const to = h("input", { type: "datetime-local", step: 1, "data-testid": "audit-to" });
  from.value = toLocalInput(new Date(Date.now() - 24 * 3600_000));
  const tenant = h("select", { "aria-label": "Tenant" }, h("option", { value: "" }, "every tenant"),
    [...tenants].map(([id, name]) => h("option", { value: id }, name)));
  const text = h("input", { type: "search", placeholder: "action, actor, resource or outcome contains…", "data-testid": "audit-text" });
  const apply = h("button", { type: "submit", class: "primary" }, "Apply");
  const list = h("div", { "data-testid": "audit-log" });
  const pager = h("div", { class: "row" });
  const verifyOut = h("div", { "data-testid": "verify-result" });
  const exportOut = h("div", { "data-testid": "export-result" });
  const verify = h("button", { type: "button", "data-testid": "verify-chain" }, "Verify chain");
  const format = h("select", { "aria-label": "Export format" }, h("option", { value: "jsonl" }, "JSONL (signed digest as last line)"),
    h("option", { value: "csv" }, "CSV (digest linked)"));
  const exportButton = h("button", { type: "button", "data-testid": "export" }, "Download export");

  const params = () => {
    const p = new URLSearchParams();
    const f = fromLocalInput(from.value);
    const t = fromLocalInput(to.value);
    if (f) p.set("from", f.toISOString());
    if (t) p.set("to", t.toISOString());
    if (tenant.value) p.set("tenantId", tenant.value);
    return p;
  };

  const cursors: (string | null)[] = [null];
  const load = async (page: number) => {
    const f = fromLocalInput(from.value);
    const t = fromLocalInput(to.value);
    try {
      const r = await gql<{ auditLog: AuditPage }>(
        `query($from: DateTime, $to: DateTime, $tenant: ID, $after: String) {
          auditLog(from: $from, to: $to, tenantId: $tenant, first: 100, after: $after) {
            totalCount pageInfo { hasNextPage endCursor } nodes { seq at tenantId actor action resourceId outcome correlationId hash } } }`,
        { from: f?.toISOString() ?? null, to: t?.toISOString() ?? null, tenant: tenant.value || null, after: cursors[page] });
      const q = text.value.trim().toLowerCase();
      const shown = r.auditLog.nodes.filter((e) => !q || [e.action, e.actor, e.resourceId ?? "", e.outcome].some((x) => x.toLowerCase().includes(q)));
      cursors[page + 1] = r.auditLog.pageInfo.endCursor;
      fill(list, h("p", { class: "status" }, `${r.auditLog.totalCount} entries in the window · page ${page + 1}${q ? ` · ${shown.length} match` : ""}`),
        shown.length === 0 ? h("p", { class: "empty" }, "No entries.") : table(
          ["Seq", "Time", ...(operatorView ? ["Tenant"] : []), "Actor", "Action", "Resource", "Outcome", "Hash"],
          shown.map((e) => row({ "data-seq": e.seq, "data-action": e.action }, [
            String(e.seq), time(e.at), ...(operatorView ? [e.tenantId ? tenants.get(e.tenantId) ?? shortId(e.tenantId) : "platform"] : []),
            e.actor, h("code", null, e.action), e.resourceId ? h("code", { title: e.resourceId }, shortId(e.resourceId)) : "—", e.outcome,
            h("code", { title: e.hash }, e.hash.slice(0, 12) + "…"),
          ]))));
      const prev = h("button", { type: "button", disabled: page === 0 }, "Previous");
      prev.addEventListener("click", () => void load(page - 1));
      const next = h("button", { type: "button", disabled: !r.auditLog.pageInfo.hasNextPage }, "Next");
      next.addEventListener("click", () => void load(page + 1));
      fill(pager, prev, next);
    } catch (e) {
      fill(list, errorBox(e));
    }
  };

  verify.addEventListener("click", () => void busy(verify, async () => {
    fill(verifyOut);
    try {
      const r = await gql<{ verifyAuditChain: { valid: boolean; entries: number; firstBrokenSeq: number | null; headHash: string } }>(
        "query($t: ID) { verifyAuditChain(tenantId: $t) { valid entries firstBrokenSeq headHash } }", { t: tenant.value || null });
      const v = r.verifyAuditChain;
      fill(verifyOut, v.valid
        ? notice(`Chain intact: ${v.entries} entries checked, head ${v.headHash.slice(0, 16)}…`, "ok")
        : notice(`Chain BROKEN at entry ${v.firstBrokenSeq}: an entry was edited or removed (${v.entries} entries counted).`, "warn"));
      verifyOut.dataset.valid = String(v.valid);
    } catch (e) {
      fill(verifyOut, errorBox(e));
    }
  }));

  exportButton.addEventListener("click", () => void busy(exportButton, async () => {
    fill(exportOut);
    try {
      const p = params();
      p.set("format", format.value);
      const { blob, headers } = await download(`/api/exports/audit?${p}`);
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      save(blob, `kraud-audit-${stamp}.${format.value}`);
      const link = headers.get("Link");
      const digest = link ? /<([^>]+)>;\s*rel="signature"/.exec(link)?.[1] : null;
      const items: Node[] = [notice(`Downloaded ${blob.size} bytes. ${format.value === "jsonl" ? "Its last line is the signed digest." : ""}`, "ok")];
      if (digest) {
        const get = h("button", { type: "button", class: "small" }, "Download its signed digest");
        get.addEventListener("click", () => void download(digest).then((d) => save(d.blob, `kraud-audit-${stamp}.digest.json`)).catch((e) => fill(exportOut, errorBox(e))));
        items.push(h("p", null, "The CSV's signature: ", get));
      }
      items.push(h("p", { class: "hint" }, "Check it offline: dotnet run --project Kraud.Api -- audit verify <file> --key-url <this Kraud>/.well-known/kraud-audit-key"));
      fill(exportOut, items);
    } catch (e) {
      fill(exportOut, errorBox(e));
    }
  }));

  const filters = h("form", { class: "form inline", onsubmit: (e: Event) => {
    e.preventDefault();
    cursors.length = 1;
    void load(0);
  } }, field("From", from), field("To", to), operatorView ? field("Tenant", tenant) : null, field("Contains", text), apply);

  fill(root, h("div", { class: "page-head" }, h("h1", null, "Audit log")),
    filters,
    h("div", { class: "row" }, verify, format, exportButton),
    verifyOut, exportOut, list, pager);
  await load(0);
};

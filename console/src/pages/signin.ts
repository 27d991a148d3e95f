import { h, fill, field } from "../dom";
import { signIn } from "../auth";
import type { Page } from "../page";
import { busy, errorBox } from "../ui";

export const signInPage: Page = (root) => {
  const token = h("input", { type: "password", name: "token", id: "token", autocomplete: "off", required: true, spellcheck: "false",
    placeholder: "krd_…", "data-testid": "token" });
  const status = h("div", { class: "status" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "sign-in" }, "Sign in");
  const form = h("form", { class: "signin", onsubmit: (e: Event) => {
    e.preventDefault();
    fill(status);
    void busy(submit, () => signIn(token.value.trim())).catch((err) => fill(status, errorBox(err)));
  } },
  h("h1", null, "Kraud console"),
  h("p", null, "Sign in with an API token. It is kept in this tab's session storage only and sent with every request to the API; closing the tab forgets it."),
  field("API token", token),
  submit,
  status);
  fill(root, h("div", { class: "signin-page" }, form));
  token.focus();
};

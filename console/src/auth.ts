import { gql } from "./api";
import { session } from "./session";
import type { Me } from "./types";

/** Signs in with a token: asks `me` with it, and keeps it only if the API accepts it. */
export async function signIn(token: string): Promise<void> {
  session.trying(token);
  let me: Me;
  try {
    me = (await gql<{ me: Me }>("{ me { tokenId role tenant { id name } } }")).me;
  } catch (e) {
    session.trying(null);
    throw e;
  }
  session.start(token, me);
}

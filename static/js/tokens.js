// The access tokens page: a click in the new token's field selects it, ready to copy.
for (const field of document.querySelectorAll("[data-new-token]")) {
  field.addEventListener("click", () => field.select());
}

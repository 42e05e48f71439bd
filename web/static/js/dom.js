// The one DOM helper every page builds its elements with.
//   el("button", { i18n: "action.save", class: "primary", onclick: save, dataset: { id } }, child…)
// Options: `i18n` (a label key: translated now, and again when the language changes), `text`,
// `class` (also `className`, `cls`), `dataset`, `attrs` (an object of attributes), `on…`
// (listeners); any other name is an attribute (true: present, false/null/undefined: left out).
// Children may be nodes or strings; null, undefined and false are skipped.
import { t } from "./i18n.js";

const CLASS = new Set(["class", "className", "cls"]);

export function el(tag, options = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "i18n") {
      node.dataset.i18n = value;
      node.textContent = t(value);
    } else if (name === "text") node.textContent = value;
    else if (CLASS.has(name)) node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "attrs") {
      for (const [key, attr] of Object.entries(value)) node.setAttribute(key, attr);
    } else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

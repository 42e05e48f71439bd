// The phone page's labels, Chinese and English; status names match dispatch/orders.py.
import labels from "../labels/phone.json" with { type: "json" };
import { extend } from "./i18n.js";

extend(labels);

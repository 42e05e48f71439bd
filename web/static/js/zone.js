// Wall-clock time in the display zone (FLEET_DISPLAY_TIMEZONE), to and from instants: the one
// conversion every page uses (datetime-local inputs, date filters, periods). `zone` undefined
// means the browser's own.

const FORMATS = new Map();

function format(zone) {
  const key = zone || "";
  if (!FORMATS.has(key)) {
    FORMATS.set(key, new Intl.DateTimeFormat("en-US", {
      timeZone: zone || undefined, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    }));
  }
  return FORMATS.get(key);
}

// The zone's offset from UTC at an instant (epoch ms), in minutes.
export function offsetMinutes(ms, zone) {
  const parts = Object.fromEntries(
    format(zone).formatToParts(new Date(ms)).map((p) => [p.type, Number(p.value)]));
  const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute,
    parts.second);
  return Math.round((wall - Math.floor(ms / 1000) * 1000) / 60_000);
}

// The instant (epoch ms) a wall-clock time names in the zone. Two passes: the offset at the wall
// time read as UTC can differ from the offset at the real instant near a daylight-saving change.
export function wallToInstant(year, month, day, hour = 0, minute = 0, zone = undefined) {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  const first = wall - offsetMinutes(wall, zone) * 60_000;
  return wall - offsetMinutes(first, zone) * 60_000;
}

// "2026-11-24" or "2026-11-24T09:00", read in the zone -> epoch ms.
export function parseWall(local, zone) {
  const [day, time = "00:00"] = local.split("T");
  const [y, m, d] = day.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  return wallToInstant(y, m, d, hh, mm, zone);
}

const pad = (n) => String(n).padStart(2, "0");

// "2026-11-24T09:00" read in the zone -> "2026-11-24T09:00:00+08:00".
export function zonedIso(local, zone) {
  const [day, time] = local.split("T");
  const [hh, mm] = time.split(":").map(Number);
  const offset = offsetMinutes(parseWall(local, zone), zone);
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  return `${day}T${pad(hh)}:${pad(mm)}:00${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

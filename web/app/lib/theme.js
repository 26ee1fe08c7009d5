// Light or dark: follows the system setting unless the user picked one (kept in
// localStorage: a display preference, nothing secret). The resolved theme is set as
// `data-theme` on <html>, where the stylesheet's colours hang.
import { createStore } from './store.js';

const KEY = 'event-detector.theme';
export const THEME_MODES = ['system', 'light', 'dark'];
const system = matchMedia('(prefers-color-scheme: dark)');

function savedMode() {
  try {
    const value = localStorage.getItem(KEY);
    return THEME_MODES.includes(value) ? value : 'system';
  } catch {
    return 'system'; // storage disabled: follow the system
  }
}

function resolve(mode) {
  return mode === 'system' ? (system.matches ? 'dark' : 'light') : mode;
}

// { mode: 'system' | 'light' | 'dark', theme: 'light' | 'dark' }
export const theme = createStore({ mode: savedMode(), theme: resolve(savedMode()) });

function apply({ theme: resolved }) {
  document.documentElement.dataset.theme = resolved;
}
apply(theme.get());
theme.subscribe(apply);
system.addEventListener('change', () => theme.set({ theme: resolve(theme.get().mode) }));

export function setThemeMode(mode) {
  try {
    if (mode === 'system') localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, mode);
  } catch {
    // not kept across visits; still applied now
  }
  theme.set({ mode, theme: resolve(mode) });
}

/** The next mode of the toggle: system → light → dark → system. */
export function nextThemeMode(mode) {
  return THEME_MODES[(THEME_MODES.indexOf(mode) + 1) % THEME_MODES.length];
}

/** A colour of the current theme (a CSS custom property of <html>), for canvases. */
export function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/**
 * A small path router: the API serves index.html for every unknown path, so real URLs work on reload.
 */
import { createContext, type MouseEvent, type ReactNode, use, useEffect, useState } from 'react';

export const routes = [
  { path: '/', label: 'Dashboard' },
  { path: '/buy', label: 'Buy credits' },
  { path: '/ledger', label: 'Ledger' },
  { path: '/usage', label: 'Usage' },
  { path: '/keys', label: 'API keys' },
  { path: '/webhooks', label: 'Webhooks' },
  { path: '/playground', label: 'Playground' },
  { path: '/settings', label: 'Alerts' },
] as const;

export type RoutePath = (typeof routes)[number]['path'];

/** The operators' section: linked only for operators (the API says who is one). */
export const OPERATIONS_PATH = '/operations';

const RouterContext = createContext<{ path: string; navigate(path: string): void }>({
  path: '/',
  navigate: () => {},
});

/** The route a location's path names: `/keys/` (a typed or bookmarked link) is `/keys`. */
function routeOf(pathname: string): string {
  return pathname.replace(/\/+$/, '') || '/';
}

export function RouterProvider({ children }: { children: ReactNode }) {
  const [path, setPath] = useState(() => {
    const route = routeOf(globalThis.location.pathname);
    // The address bar shows the route's own URL (the links compare against it).
    if (route !== globalThis.location.pathname) {
      globalThis.history.replaceState(null, '', route + globalThis.location.search);
    }
    return route;
  });
  useEffect(() => {
    const onPop = () => setPath(routeOf(globalThis.location.pathname));
    globalThis.addEventListener('popstate', onPop);
    return () => globalThis.removeEventListener('popstate', onPop);
  }, []);
  const navigate = (next: string) => {
    if (next === globalThis.location.pathname) return;
    globalThis.history.pushState(null, '', next + globalThis.location.search);
    setPath(next);
    globalThis.scrollTo?.(0, 0);
  };
  return <RouterContext value={{ path, navigate }}>{children}</RouterContext>;
}

export function useRouter() {
  return use(RouterContext);
}

export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }) {
  const { path, navigate } = useRouter();
  const onClick = (event: MouseEvent<HTMLAnchorElement>) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(to);
  };
  return (
    <a href={to} onClick={onClick} className={className} aria-current={path === to ? 'page' : undefined}>
      {children}
    </a>
  );
}

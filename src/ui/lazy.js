/**
 * A panel whose module loads when it is first shown: the first frame needs
 * only the cluster view, so the other tabs (and the charts' library) stay off
 * its critical path. The module is asked for once; every later render of the
 * panel uses it at once.
 */
import { useEffect, useState } from 'preact/hooks';
import { html } from './lib/html.js';

/**
 * @param load () => import('./x.js')
 * @param exportName the component the module exports
 * @param placeholder what shows while it loads (a string, or nothing)
 */
export function lazyPanel(load, exportName, placeholder = 'Loading…') {
  let loaded;
  let loading;
  const get = () => {
    loading ??= load().then((mod) => {
      loaded = mod[exportName];
      return loaded;
    });
    return loading;
  };
  return function LazyPanel(props) {
    const [, setReady] = useState(loaded !== undefined);
    useEffect(() => {
      if (loaded !== undefined) return;
      let live = true;
      get().then(
        () => live && setReady(true),
        (err) => console.error(`could not load ${exportName}: ${err.message}`),
      );
      return () => {
        live = false;
      };
    }, []);
    if (loaded === undefined)
      return placeholder ? html`<p class="loading">${placeholder}</p>` : null;
    return html`<${loaded} ...${props} />`;
  };
}

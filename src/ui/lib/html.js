/** htm bound to preact: the page's templates, with no build step. */
import htm from 'htm';
import { h } from 'preact';

export const html = htm.bind(h);

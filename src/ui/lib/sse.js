/**
 * A Server-Sent Events parser for streams read with fetch() (EventSource
 * cannot send an Authorization header). Feed it text as it arrives; it calls
 * onEvent({event, data, id}) once per complete event. Pure: tested in Node.
 */
export function sseParser(onEvent) {
  let buffer = '';
  let event = '';
  let data = [];
  let id;
  function line(text) {
    if (text === '') {
      if (data.length > 0 || event !== '') {
        onEvent({ event: event || 'message', data: data.join('\n'), id });
      }
      event = '';
      data = [];
      id = undefined;
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id') id = value;
  }
  return {
    feed(chunk) {
      buffer += chunk;
      for (;;) {
        const m = /\r\n|\r|\n/.exec(buffer);
        // A lone \r at the end may be the first half of \r\n: wait for more.
        if (m === null || (m[0] === '\r' && m.index === buffer.length - 1)) break;
        line(buffer.slice(0, m.index));
        buffer = buffer.slice(m.index + m[0].length);
      }
    },
  };
}

// Application exceptions met while the connection or the socket calls up.

/**
 * An exception thrown by code above the connection (a 'data' listener or an
 * onread callback, a write callback, a 'drain' handler run from one) is the
 * application's: it goes to 'uncaughtException', as one thrown from net's
 * callbacks does, while the connection, whose state was mid-update when it
 * called up, carries on. Caught and turned into a connection failure, it
 * would read as a network error (and a throw in the middle of building a
 * message would have lost the bytes around it).
 */
export function rethrowLater(err: unknown): void {
  process.nextTick(() => {
    throw err;
  });
}

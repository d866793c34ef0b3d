/**
 * Sign in with Ethereum: the API writes the EIP-4361 message (with its own domain and a single-use
 * nonce), the wallet signs it, and signIn sets the httpOnly session cookie. A fresh urql client after
 * each change drops every cached result of the previous session.
 */
import { createContext, type ReactNode, use, useCallback, useEffect, useRef, useState } from 'react';
import { useMutation, useQuery } from 'urql';
import { useAccount, useConnectionEffect, useSignMessage } from 'wagmi';
import { graphql } from '../gql';
import { authEvents } from '../graphql-client';
import { describeGraphqlError, describeWalletError } from '../lib/errors';

const MeQuery = graphql(`
  query Me {
    me {
      id
      walletAddress
      balance
    }
  }
`);

const SiweChallengeMutation = graphql(`
  mutation SiweChallenge($address: Address!, $chainId: Int!) {
    siweChallenge(address: $address, chainId: $chainId)
  }
`);

const SignInMutation = graphql(`
  mutation SignIn($message: String!, $signature: String!) {
    signIn(message: $message, signature: $signature) {
      expiresAt
      account {
        id
        walletAddress
      }
    }
  }
`);

const SignOutMutation = graphql(`
  mutation SignOut {
    signOut
  }
`);

export interface Session {
  me: { id: string; walletAddress: string; balance: string } | null;
  loading: boolean;
  loadError: string | null;
  signingIn: boolean;
  signInError: string | null;
  /** Why a sign-in of this page ended without the user signing out here (another tab, expiry, revocation). */
  ended: string | null;
  signIn(): Promise<void>;
  signOut(): Promise<void>;
  refresh(): void;
}

const SessionContext = createContext<Session | null>(null);

/** Tabs of this origin tell each other when they sign in or out: the cookie they share has changed. */
const SESSION_CHANNEL = 'chainmeter.session';
type SessionMessage = { type: 'signed-in' } | { type: 'signed-out' };

const ENDED_ELSEWHERE = 'You signed out in another tab. Sign in again to carry on.';
const ENDED_BY_API =
  'Your session has ended: it expired, or it was signed out elsewhere. Sign in again to carry on.';

const WALLET_DISCONNECTED = 'Your wallet disconnected, so you were signed out.';

function openSessionChannel(): BroadcastChannel | null {
  return typeof BroadcastChannel === 'undefined' ? null : new BroadcastChannel(SESSION_CHANNEL);
}

export function SessionProvider({
  children,
  chainId,
  onSessionChange,
}: {
  children: ReactNode;
  chainId: number;
  onSessionChange(): void;
}) {
  const [{ data, fetching, error }, reexecute] = useQuery({ query: MeQuery });
  const [, challenge] = useMutation(SiweChallengeMutation);
  const [, signInMutation] = useMutation(SignInMutation);
  const [, signOutMutation] = useMutation(SignOutMutation);
  const { address } = useAccount();
  const { signMessageAsync } = useSignMessage();
  const [signingIn, setSigningIn] = useState(false);
  const [signInError, setSignInError] = useState<string | null>(null);
  const [ended, setEnded] = useState<string | null>(null);
  const signedInAs = data?.me?.id ?? null;
  // Follows the account only when it changes: a render of the old client's result after a session ended
  // must not bring the ended one back (its answers would end it a second time, with another reason).
  const signedInRef = useRef(signedInAs);
  useEffect(() => {
    signedInRef.current = signedInAs;
  }, [signedInAs]);

  // A session that ends behind this page's back (the API answers as to nobody, or another tab signs out)
  // drops every result read under it: a fresh client re-reads who is signed in, and the page says why.
  const endSession = useCallback(
    (reason: string) => {
      if (!signedInRef.current) return;
      signedInRef.current = null;
      setEnded(reason);
      onSessionChange();
    },
    [onSessionChange],
  );
  useEffect(() => {
    const onUnauthenticated = () => endSession(ENDED_BY_API);
    authEvents.addEventListener('unauthenticated', onUnauthenticated);
    return () => authEvents.removeEventListener('unauthenticated', onUnauthenticated);
  }, [endSession]);
  const channel = useRef<BroadcastChannel | null>(null);
  useEffect(() => {
    const opened = openSessionChannel();
    channel.current = opened;
    if (!opened) return;
    opened.onmessage = (event: MessageEvent<SessionMessage>) => {
      if (event.data.type === 'signed-out') endSession(ENDED_ELSEWHERE);
      // Another account may now own the shared cookie: read again who is signed in.
      else onSessionChange();
    };
    return () => opened.close();
  }, [endSession, onSessionChange]);
  const announce = useCallback((message: SessionMessage) => channel.current?.postMessage(message), []);

  const signIn = useCallback(async () => {
    if (!address) return;
    setSigningIn(true);
    setSignInError(null);
    try {
      const challenged = await challenge({ address, chainId });
      if (!challenged.data) {
        throw new Error(
          challenged.error ? describeGraphqlError(challenged.error) : 'The API gave no answer.',
        );
      }
      const message = challenged.data.siweChallenge;
      let signature: string;
      try {
        signature = await signMessageAsync({ message });
      } catch (walletError) {
        throw new Error(describeWalletError(walletError));
      }
      const signedIn = await signInMutation({ message, signature });
      if (signedIn.error) throw new Error(describeGraphqlError(signedIn.error));
      setEnded(null);
      announce({ type: 'signed-in' });
      onSessionChange();
    } catch (failure) {
      setSignInError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setSigningIn(false);
    }
  }, [address, chainId, challenge, signInMutation, signMessageAsync, onSessionChange, announce]);

  /** Ends the session server-side; `reason` is shown when the user did not ask for it here. */
  const endOwnSession = useCallback(
    async (reason: string | null) => {
      signedInRef.current = null;
      await signOutMutation({});
      setEnded(reason);
      announce({ type: 'signed-out' });
      onSessionChange();
    },
    [signOutMutation, onSessionChange, announce],
  );
  const signOut = useCallback(() => endOwnSession(null), [endOwnSession]);

  // A wallet that disconnects takes its sign-in with it: connecting again, with any account, asks for a
  // signature, and nobody at this browser finds the account still open.
  const onWalletDisconnect = useCallback(() => {
    if (signedInRef.current) void endOwnSession(WALLET_DISCONNECTED);
  }, [endOwnSession]);
  useConnectionEffect({ onDisconnect: onWalletDisconnect });

  const session: Session = {
    me: data?.me ?? null,
    loading: fetching && !data,
    loadError: error ? describeGraphqlError(error) : null,
    signingIn,
    signInError,
    ended,
    signIn,
    signOut,
    refresh: () => reexecute({ requestPolicy: 'network-only' }),
  };
  return <SessionContext value={session}>{children}</SessionContext>;
}

export function useSession(): Session {
  const session = use(SessionContext);
  if (!session) throw new Error('useSession outside SessionProvider');
  return session;
}

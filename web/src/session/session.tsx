/**
 * Sign in with Ethereum: the API writes the EIP-4361 message (with its own domain and a single-use
 * nonce), the wallet signs it, and signIn sets the httpOnly session cookie. A fresh urql client after
 * each change drops every cached result of the previous session.
 */
import { createContext, type ReactNode, use, useCallback, useState } from 'react';
import { useMutation, useQuery } from 'urql';
import { useAccount, useSignMessage } from 'wagmi';
import { graphql } from '../gql';
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
  signIn(): Promise<void>;
  signOut(): Promise<void>;
  refresh(): void;
}

const SessionContext = createContext<Session | null>(null);

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
      onSessionChange();
    } catch (failure) {
      setSignInError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setSigningIn(false);
    }
  }, [address, chainId, challenge, signInMutation, signMessageAsync, onSessionChange]);

  const signOut = useCallback(async () => {
    await signOutMutation({});
    onSessionChange();
  }, [signOutMutation, onSessionChange]);

  const session: Session = {
    me: data?.me ?? null,
    loading: fetching && !data,
    loadError: error ? describeGraphqlError(error) : null,
    signingIn,
    signInError,
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

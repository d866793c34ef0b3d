// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Permit2} from "./Permit2.sol";

interface IERC2612 {
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external;
}

/// @title What the x402 Permit2 proxies share
/// @notice Written from the x402 specification of its Permit2 proxies: the proxy is the spender every
/// x402 Permit2 signature names, and the payer also signs a witness (at least the recipient and the
/// earliest settlement time), so whoever settles cannot send the funds anywhere else. Permit2 enforces
/// the deadline, the amount bound and single use of the nonce.
/// @dev No constructor state and no immutables: placed with `anvil_setCode`. Permit2 is the canonical
/// address (a constant), and the reentrancy lock's resting value is zero.
abstract contract X402Permit2ProxyBase {
    /// @notice Where Permit2 lives on every chain (and on the devnet).
    address public constant PERMIT2 = 0x000000000022D473030F116dDEE9F6B43aC78BA3;

    struct EIP2612Permit {
        uint256 value;
        uint256 deadline;
        bytes32 r;
        bytes32 s;
        uint8 v;
    }

    event Settled();
    event SettledWithPermit();

    error InvalidAmount();
    error InvalidDestination();
    error InvalidOwner();
    error InvalidPermit2Address();
    error PaymentTooEarly();
    error Permit2612AmountMismatch();
    error ReentrancyGuardReentrantCall();

    uint256 private _entered;

    modifier nonReentrant() {
        if (_entered != 0) revert ReentrancyGuardReentrantCall();
        _entered = 1;
        _;
        _entered = 0;
    }

    /// @dev The payer's EIP-2612 approval of Permit2, given by signature so that a payer without ETH
    /// needs no approval transaction. Its failure is ignored: the approval may already be in place (or
    /// the signature replayed by someone else first); if it is not, Permit2's transfer fails anyway.
    function _approvePermit2(address token, address owner, EIP2612Permit calldata permit2612, uint256 permitted)
        internal
    {
        if (permit2612.value != permitted) revert Permit2612AmountMismatch();
        try IERC2612(token).permit(
            owner, PERMIT2, permit2612.value, permit2612.deadline, permit2612.v, permit2612.r, permit2612.s
        ) {} catch {}
    }

    function _checkSettlement(uint256 amount, address owner, address to, uint256 validAfter) internal view {
        if (amount == 0) revert InvalidAmount();
        if (owner == address(0)) revert InvalidOwner();
        if (to == address(0)) revert InvalidDestination();
        // The upper bound is Permit2's deadline.
        if (block.timestamp < validAfter) revert PaymentTooEarly();
    }
}

/// @title x402's `upto` Permit2 proxy, for the devnet
/// @notice The payer signs a maximum; the facilitator named in the witness (and only it) settles any
/// amount up to that maximum, once, to the witness's recipient. Placed at the x402 upto proxy's
/// canonical address.
contract X402UptoPermit2Proxy is X402Permit2ProxyBase {
    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,address facilitator,uint256 validAfter)");

    error AmountExceedsPermitted();
    error UnauthorizedFacilitator();

    /// @notice Moves `amount` (at most the permitted amount) from `owner` to `witness.to`.
    function settle(
        Permit2.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        _settle(permit, amount, owner, witness, signature);
        emit Settled();
    }

    /// @notice As `settle`, first submitting the payer's EIP-2612 approval of Permit2.
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        Permit2.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        _approvePermit2(permit.permitted.token, owner, permit2612, permit.permitted.amount);
        _settle(permit, amount, owner, witness, signature);
        emit SettledWithPermit();
    }

    function _settle(
        Permit2.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        _checkSettlement(amount, owner, witness.to, witness.validAfter);
        // The payer chose who may settle: nobody else can spend the signature first.
        if (msg.sender != witness.facilitator) revert UnauthorizedFacilitator();
        bytes32 witnessHash = keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.facilitator, witness.validAfter));
        Permit2(PERMIT2).permitWitnessTransferFrom(
            permit,
            Permit2.SignatureTransferDetails({to: witness.to, requestedAmount: amount}),
            owner,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
    }
}

/// @title x402's `exact` Permit2 proxy, for the devnet
/// @notice The permitted amount, no more and no less, to the witness's recipient; anyone may settle.
/// Placed at the x402 exact proxy's canonical address (x402's `exact` scheme uses it for tokens without
/// EIP-3009).
contract X402ExactPermit2Proxy is X402Permit2ProxyBase {
    struct Witness {
        address to;
        uint256 validAfter;
    }

    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,uint256 validAfter)");

    function settle(
        Permit2.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _settle(permit, owner, witness, signature);
        emit Settled();
    }

    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        Permit2.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _approvePermit2(permit.permitted.token, owner, permit2612, permit.permitted.amount);
        _settle(permit, owner, witness, signature);
        emit SettledWithPermit();
    }

    function _settle(
        Permit2.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        uint256 amount = permit.permitted.amount;
        _checkSettlement(amount, owner, witness.to, witness.validAfter);
        bytes32 witnessHash = keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.validAfter));
        Permit2(PERMIT2).permitWitnessTransferFrom(
            permit,
            Permit2.SignatureTransferDetails({to: witness.to, requestedAmount: amount}),
            owner,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
    }
}

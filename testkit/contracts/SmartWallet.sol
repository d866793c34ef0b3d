// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title A one-owner smart-contract wallet for the devnet
/// @notice Answers EIP-1271: a signature is valid when the owner's key signed the very hash asked
/// about (a 65-byte r, s, v signature). The owner can make it call anything (`execute`), e.g. approve
/// Permit2 or pay. Stands in for the smart wallets people hold (Coinbase Smart Wallet and the like) in
/// tests of contract signers and, through `SmartWalletFactory`, of counterfactual ones (EIP-6492).
contract SmartWallet {
    bytes4 private constant ERC1271_MAGIC_VALUE = 0x1626ba7e;
    bytes4 private constant ERC1271_INVALID = 0xffffffff;
    uint256 private constant HALF_CURVE_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    address public immutable owner;

    constructor(address initialOwner) {
        require(initialOwner != address(0), "SmartWallet: no owner");
        owner = initialOwner;
    }

    receive() external payable {}

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) return ERC1271_INVALID;
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_CURVE_ORDER || (v != 27 && v != 28)) return ERC1271_INVALID;
        address signer = ecrecover(hash, v, r, s);
        return signer != address(0) && signer == owner ? ERC1271_MAGIC_VALUE : ERC1271_INVALID;
    }

    /// @notice The owner makes the wallet call `target` (bubbling up a revert).
    function execute(address target, uint256 value, bytes calldata data) external returns (bytes memory) {
        require(msg.sender == owner, "SmartWallet: only the owner");
        (bool ok, bytes memory result) = target.call{value: value}(data);
        if (!ok) {
            assembly {
                revert(add(result, 0x20), mload(result))
            }
        }
        return result;
    }
}

/// @title CREATE2 factory of SmartWallets
/// @notice A wallet's address is known before it exists (`walletAddress`), which is what an EIP-6492
/// signature relies on: it carries this factory and the `createWallet` call that would deploy it.
/// Deploying twice is harmless: the second call returns the existing wallet.
contract SmartWalletFactory {
    event WalletCreated(address indexed wallet, address indexed owner, bytes32 salt);

    function createWallet(address owner, bytes32 salt) external returns (address wallet) {
        wallet = walletAddress(owner, salt);
        if (wallet.code.length > 0) return wallet;
        SmartWallet created = new SmartWallet{salt: salt}(owner);
        require(address(created) == wallet, "SmartWalletFactory: unexpected address");
        emit WalletCreated(wallet, owner, salt);
    }

    function walletAddress(address owner, bytes32 salt) public view returns (address) {
        bytes32 initCodeHash = keccak256(abi.encodePacked(type(SmartWallet).creationCode, abi.encode(owner)));
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, initCodeHash)))));
    }
}

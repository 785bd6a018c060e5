// Package account names the kinds of account the platform knows. It is a
// leaf: authentication, the store and the API all speak of roles.
package account

// Role is the kind of account a token speaks for.
type Role string

// The roles of the platform. Operators have no account row.
const (
	RoleSeller   Role = "seller"
	RoleBuyer    Role = "buyer"
	RoleOperator Role = "operator"
)
